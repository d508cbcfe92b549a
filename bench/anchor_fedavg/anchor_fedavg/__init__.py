"""A plain Flower FedAvg app over Commonweal's federated softmax (the bench's anchor)."""
