"""TFLiteExport: checked TFLite variants (float32, float16, dynamic_int8, int8) of the trained model."""
