"""orthobook: the package behind the book on orthogonal and non-normal recurrent networks."""

__version__ = "0.1.0"
