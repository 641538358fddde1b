"""One module per command; each parses options, calls one libmaestro function, renders."""
