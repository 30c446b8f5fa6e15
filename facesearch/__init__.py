"""facesearch: face identity search service.

The components live in the top-level folders of the repository (docs/architecture.md#components)
and install as subpackages: facesearch.embedder, facesearch.gallery, ...
"""

__version__ = "0.1.0"
