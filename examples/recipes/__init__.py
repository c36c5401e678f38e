"""Recipes: rangememo in front of real client libraries (see docs/recipes.md)."""
