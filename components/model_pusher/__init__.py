"""Pusher that ships the SavedModel and the TFLite variants that passed, for blessed models only."""
