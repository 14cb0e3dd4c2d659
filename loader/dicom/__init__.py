"""Stage 3, decode: raw elements → a tree of plain Python values, once per element.

In: raw elements from headers/, or a DICOM JSON document (from_json.py).
Out: `decode.Decoded`, values decoded by VR (vr.py) and shared between the
objects one worker decodes (value_store.py), pseudonymised in the worker when a
key is given (pseudonymize.py), and the header as `dicom_raw` stores it and
reads it back (raw_json.py, stored_headers.py).
"""
