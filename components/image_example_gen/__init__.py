"""Image ExampleGen: photo folders (DPED or unpaired layout) -> train/eval/test tf.Examples + ingest report.

Import the component from `components.image_example_gen.component`; feature keys from
`phone2dslr.features` (light: no TFX import).
"""
