"""Speech Commands datasets: the embedded synthetic default, the real download, and scanning.

- :func:`synthesize` — generate the offline synthetic dataset (espeak-ng speakers).
- :func:`download` — fetch, verify and safely extract a real Speech Commands archive.
- :func:`scan`, :func:`check`, :func:`detect_layout` — read any dataset folder into a table
  and say whether it is usable.
"""

from speechlib.datasets.download import download
from speechlib.datasets.scan import check, detect_layout, scan
from speechlib.datasets.synth import synthesize

__all__ = ["check", "detect_layout", "download", "scan", "synthesize"]
