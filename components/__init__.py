"""The project's own TFX components: image ExampleGen, TFLite export, report."""
