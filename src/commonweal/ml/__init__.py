"""Numerical work as pure functions over arrays and records: data quality (personal data,
duplicates, label noise), review consensus, and (in later parts) training and valuation.

Nothing here touches storage, the network or the clock; the hub calls it and logs what it
decided, with the inputs, so a verifier can recompute it."""
