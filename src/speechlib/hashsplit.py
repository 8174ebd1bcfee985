"""The Speech Commands hash rule: which set a clip belongs to, from its speaker id alone.

Speech Commands (Warden 2018, arXiv:1804.03209) does not store a split column.
Its ``validation_list.txt`` and ``testing_list.txt`` were produced by a rule
that anyone can recompute from a file name, given in the dataset's README and
in TensorFlow's ``tensorflow/examples/speech_commands/input_data.py``
(``which_set``):

1. take the file name and drop everything from ``_nohash_`` on: that is the
   speaker id (``0a7c2a8d_nohash_1.wav`` -> ``0a7c2a8d``);
2. SHA-1 of that id (UTF-8 bytes), read as one big integer;
3. percentage = (hash mod 2**27) * (100 / (2**27 - 1));
4. percentage < validation% -> ``"validation"``; < validation% + testing% ->
   ``"testing"``; otherwise ``"training"``. The official lists use 10% and 10%.

Because only the speaker id is hashed, every clip of a speaker lands in the same
set (no speaker leaks from training into testing), and a speaker keeps its set
when the dataset grows. The rule reproduces every line of the official v0.01
lists.

Functions
---------
- :func:`speaker_id` — the speaker id of a clip's file name (both dataset layouts).
- :func:`hash_percentage` — the speaker's position in [0, 100] under the rule.
- :func:`official_band` — the official set (hash band) a folder's speakers all come from, if any.
- :func:`which_set` — ``"validation"``, ``"testing"`` or ``"training"`` for a file name.

Examples
--------
>>> from speechlib import hashsplit
>>> hashsplit.which_set("yes/0a7c2a8d_nohash_0.wav")
'training'
>>> round(hashsplit.hash_percentage("0a7c2a8d"), 3)
56.836
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import PurePath

from speechlib import config

# The rule's modulus, as in TensorFlow's input_data.py (MAX_NUM_WAVS_PER_CLASS = 2**27 - 1):
# hashes are taken mod 2**27 and scaled so that the largest value maps to 100%.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1

VALIDATION = "validation"
TESTING = "testing"
TRAINING = "training"


def speaker_id(filename: str | PurePath) -> str:
    """Return the speaker id of a clip from its file name (the part hashed by the rule).

    Parameters
    ----------
    filename : str or path
        A clip's file name or path, e.g. ``"yes/0a7c2a8d_nohash_0.wav"``. In the
        official test-set layout, files in ``_unknown_`` are named
        ``<word>_<speaker>_nohash_<n>.wav``; the word prefix is dropped, so the
        speaker, not the word, is hashed (DATA.md).

    Returns
    -------
    str
        The part of the base name before ``_nohash_`` (without a ``<word>_``
        prefix). A name without ``_nohash_`` is returned without its suffixes,
        as TensorFlow's rule would hash it.
    """
    name = PurePath(filename).name
    if config.NOHASH in name:
        stem = name.split(config.NOHASH, 1)[0]
        # Speaker ids never contain "_"; anything before the last "_" is a word prefix.
        return stem.rsplit("_", 1)[-1]
    return name.split(".", 1)[0]


def hash_percentage(speaker: str) -> float:
    """Return the speaker's hash position in percent, as the dataset's split rule computes it.

    Parameters
    ----------
    speaker : str
        The speaker id, e.g. ``"0a7c2a8d"`` (see :func:`speaker_id`).

    Returns
    -------
    float
        ``(int(sha1(speaker)) mod 2**27) * (100 / (2**27 - 1))``, in [0, 100].
    """
    digest = hashlib.sha1(speaker.encode("utf-8")).hexdigest()
    return (int(digest, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)


def official_band(percentages: Iterable[float]) -> tuple[float, float] | None:
    """The official set whose hash band holds every given speaker, or None.

    The official test set (``speech_commands_test_set_v0.02``) holds only the
    speakers whose hash percentage lies in the testing band [10, 20) of the
    official 10/10 rule, so that rule puts all of them in testing and leaves
    nothing to train on. :func:`which_set` with ``band=`` splits such a folder
    by the same hash, zoomed into its band.

    Parameters
    ----------
    percentages : iterable of float
        :func:`hash_percentage` of each speaker.

    Returns
    -------
    tuple of float or None
        ``(0, 10)`` (validation band) or ``(10, 20)`` (testing band) of the
        official rule when every percentage lies in it; None otherwise.
    """
    values = list(percentages)
    if not values:
        return None
    low, high = min(values), max(values)
    v, t = config.VALIDATION_PERCENT, config.TESTING_PERCENT
    for band in ((0.0, v), (v, v + t)):
        if band[0] <= low and high < band[1]:
            return band
    return None


def which_set(
    filename: str | PurePath,
    validation_percent: float = config.VALIDATION_PERCENT,
    testing_percent: float = config.TESTING_PERCENT,
    *,
    band: tuple[float, float] = (0.0, 100.0),
    speaker: str | None = None,
) -> str:
    """Return the set a clip belongs to under the Speech Commands hash rule.

    Parameters
    ----------
    filename : str or path
        The clip's file name or relative path, e.g. ``"yes/0a7c2a8d_nohash_0.wav"``.
    validation_percent : float, default 10.0
        Share of speakers (in percent) that go to validation.
    testing_percent : float, default 10.0
        Share of speakers (in percent) that go to testing.
    band : tuple of float, default (0, 100)
        Read the percentage relative to this band: ``100 * (p - low) / (high -
        low)``. The default is the official rule; ``(10, 20)`` splits a folder
        of official test-set speakers (see :func:`official_band`).
    speaker : str, optional
        The clip's speaker id when it is known otherwise (a ``--speaker-pattern``
        or a CSV column of a dataset of one's own): hashed instead of
        :func:`speaker_id` of the file name.

    Returns
    -------
    str
        ``"validation"``, ``"testing"`` or ``"training"``.

    Raises
    ------
    ValueError
        If the percentages are negative or add up to more than 100.
    """
    if validation_percent < 0 or testing_percent < 0 or validation_percent + testing_percent > 100:
        raise ValueError(
            f"validation_percent={validation_percent} and testing_percent={testing_percent} must be "
            "non-negative and add up to at most 100"
        )
    low, high = band
    percentage = 100.0 * (hash_percentage(speaker or speaker_id(filename)) - low) / (high - low)
    if percentage < validation_percent:
        return VALIDATION
    if percentage < validation_percent + testing_percent:
        return TESTING
    return TRAINING
