"""What the community publishes about a model version: its model card (Markdown, in the
layout of a Hugging Face card) and a Croissant datasheet of its training data, both pure
functions of the facts the log holds about the version."""

from commonweal.cards.croissant import croissant
from commonweal.cards.model_card import render_model_card

__all__ = ["croissant", "render_model_card"]
