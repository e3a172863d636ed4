"""Leaf helpers shared by every floor; nothing here imports the project."""
