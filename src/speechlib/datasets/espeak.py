"""espeak-ng, the speech synthesizer of the synthetic dataset, driven through ctypes.

The library and its voice data come from the PyPI package ``espeakng-loader``.
:class:`Espeak` loads it, speaks a word with a voice, rate and pitch, and
reloads it (:meth:`Espeak.reset`) to make an utterance reproducible;
:func:`engine` is the one instance of a process.

Examples
--------
>>> from speechlib.datasets import espeak
>>> samples = espeak.engine().speak("yes", voice="en-us+f2", rate=160, pitch=50, pitch_range=50)  # doctest: +SKIP
"""

from __future__ import annotations

import _ctypes
import ctypes
import ctypes.util

import espeakng_loader
import numpy as np

__all__ = ["Espeak", "EspeakError", "engine"]

# speak_lib.h: espeak_AUDIO_OUTPUT, espeak_POSITION_TYPE, espeak_PARAMETER, flags.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE, _ESPEAK_VOLUME_PARAM, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4
_ESPEAK_VOLUME = 60  # espeak's amplitude (100 = default); lower keeps its int16 output away from clipping
# int SynthCallback(short *wav, int numsamples, espeak_EVENT *events)
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or could not speak."""


class Espeak:
    """espeak-ng (the library bundled by the PyPI package espeakng-loader), driven through ctypes.

    espeak-ng keeps state between utterances inside the library (the phase of its
    pitch "flutter", for instance), so the same text spoken twice in a row can
    differ. :meth:`reset` unloads the library and loads it again, which restores
    its initial state: an utterance is then reproducible given the calls made
    since the last reset. Loading a voice after a reset takes a few
    milliseconds, so callers reset once per speaker, not once per utterance.
    """

    def __init__(self) -> None:
        self._lib_path = espeakng_loader.get_library_path()
        self._data_path = espeakng_loader.get_data_path().encode()
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept alive as long as the library may call it
        self._lib: ctypes.CDLL | None = None
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"))
        self.sample_rate = self.reset()
        self._lib.espeak_Info.restype = ctypes.c_char_p
        self.version = self._lib.espeak_Info(None).decode()

    def _collect(self, wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = continue synthesis

    def reset(self) -> int:
        """Unload and reload the library: back to its initial state. Returns the sample rate, Hz."""
        if self._lib is not None:
            self._lib.espeak_Terminate()
            close = _ctypes.dlclose if hasattr(_ctypes, "dlclose") else _ctypes.FreeLibrary
            close(self._lib._handle)
            self._lib = None
        try:
            lib = ctypes.CDLL(self._lib_path)
        except OSError as err:
            raise EspeakError(
                f"cannot load espeak-ng from {self._lib_path}: {err}; reinstall it with "
                "`pip install --force-reinstall espeakng-loader`"
            ) from err
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,  # text
            ctypes.c_size_t,  # size
            ctypes.c_uint,  # position
            ctypes.c_int,  # position_type
            ctypes.c_uint,  # end_position
            ctypes.c_uint,  # flags
            ctypes.c_void_p,  # unique_identifier
            ctypes.c_void_p,  # user_data
        ]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self._data_path, 0)
        if rate <= 0:
            raise EspeakError(
                f"espeak-ng did not start with its data at {self._data_path.decode()}; reinstall it with "
                "`pip install --force-reinstall espeakng-loader`"
            )
        lib.espeak_SetSynthCallback(self._callback)
        # Breathy voices draw noise from the C library's rand(), whose state outlives the reload.
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed(1)
        self._libc.srand(1)
        self._lib = lib
        return rate

    def speak(self, text: str, *, voice: str, rate: int, pitch: int, pitch_range: int) -> np.ndarray:
        """Synthesize ``text``; return float32 samples in [-1, 1] at :attr:`sample_rate` (22,050 Hz).

        Parameters
        ----------
        text : str
            What to say (plain English text).
        voice : str
            espeak-ng voice name with an optional variant, e.g. ``"en-us+m3"``.
        rate : int
            Speaking rate, words per minute (80 to 450; 175 is espeak's normal).
        pitch, pitch_range : int
            Base pitch and pitch range, 0 to 100 (50 is the voice's normal).
        """
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {voice!r} in {self._data_path.decode()}")
        lib.espeak_SetParameter(_ESPEAK_RATE, int(np.clip(rate, 80, 450)), 0)
        lib.espeak_SetParameter(_ESPEAK_PITCH, int(np.clip(pitch, 0, 100)), 0)
        lib.espeak_SetParameter(_ESPEAK_RANGE, int(np.clip(pitch_range, 0, 100)), 0)
        lib.espeak_SetParameter(_ESPEAK_VOLUME_PARAM, _ESPEAK_VOLUME, 0)
        self._chunks = []
        data = text.encode()
        err = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        if err != 0 or not self._chunks:
            raise EspeakError(f"espeak-ng failed to say {text!r} with voice {voice!r} (error code {err})")
        return (np.concatenate(self._chunks).astype(np.float32) / 32768.0).astype(np.float32)


_ENGINE: list[Espeak] = []  # one per process, made on first use


def engine() -> Espeak:
    """This process's :class:`Espeak`, loaded on first use."""
    if not _ENGINE:
        _ENGINE.append(Espeak())
    return _ENGINE[0]
