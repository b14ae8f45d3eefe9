"""RunReport: one self-contained HTML page per run (blessing and why, metrics, full-size photos, gain
histogram, training curves, TFLite, ingest, samples).

Import the component from `components.run_report.component`; the page itself is built by the pure
`components.run_report.render` (no TensorFlow; its data and building blocks in `page`, the
model-quality sections in `quality_sections`, the pictures in
`visual_sections`), so it can be tested and restyled on its own.
"""
