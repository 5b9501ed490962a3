"""jupyter_replay: interactive replay of recorded time series, one isolated session per kernel."""
