"""facesearch.client: identify, enroll, verify, list, delete and info against a running server. Not built yet (issue 3)."""
