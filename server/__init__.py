"""facesearch.server: serves the FaceSearch gRPC API (DESIGN.md §2). Not built yet (issue 3)."""
