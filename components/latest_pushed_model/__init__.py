"""LatestPushedModel: the newest model the Pusher wrote under serving_dir, as a Model artifact.

The baseline for the Evaluator where TFX Resolver nodes cannot run (open-source Kubeflow Pipelines).
"""
