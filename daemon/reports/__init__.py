"""Reports and figures rendered from carbond's results (tables, PNG plots)."""
