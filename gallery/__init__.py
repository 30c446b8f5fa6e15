"""facesearch.gallery: the identity store (FAISS index + SQL metadata). Not built yet (issue 8)."""
