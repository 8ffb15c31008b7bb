"""Validation against closed forms and independent references."""
