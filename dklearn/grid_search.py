"""The import path of the 2017 post: ``from dklearn.grid_search import GridSearchCV``."""

from .model_selection import GridSearchCV, RandomizedSearchCV

__all__ = ["GridSearchCV", "RandomizedSearchCV"]
