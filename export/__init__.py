"""TFLite conversion and checks, the official DPED import, full-resolution (tiled) inference."""
