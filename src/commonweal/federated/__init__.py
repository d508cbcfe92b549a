"""Federated training on Flower (part 10): members train the community's softmax model on
their own machines, the hub aggregates robustly and logs every round.

``bundle`` (the Flower app bundle nodes run), ``keys`` (node keys), ``tls`` (the
SuperLink's certificates), ``superlink`` (the hub's Flower server, supervised), ``gate``
(the node's refusal of any other bundle), ``node`` (the member's side), ``client_app`` and
``server_app`` (the Flower apps). Importing this package loads nothing of Flower's.
"""
