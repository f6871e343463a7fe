"""streamdq's Faust layer: topics, decoding, calling the engine, sending results, web endpoints.

Nothing statistical lives here; see :mod:`monitor`.
"""

__all__: list[str] = []
