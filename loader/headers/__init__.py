"""Stage 2, read headers: one object's bytes up to its Pixel Data, never its pixels.

In: an `ObjectRef` and its filesystem (sources).
Out: `reader.ParsedHeader`, the header's bytes split into raw elements
(dataset_bytes.py), with undefined-length sequences measured without holding
them (sequence_end.py), frame positions when asked (frame_offsets.py), and the
set of sequences the extraction needs kept whole (extracted_sequences.py).
"""
