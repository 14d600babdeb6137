"""recall: can reinforcement learning make a language model recall facts it already stores?"""

__version__ = "0.1.0"
