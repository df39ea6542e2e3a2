"""Media processing and delivery: media files, renditions, signed URLs, the stream endpoint."""
