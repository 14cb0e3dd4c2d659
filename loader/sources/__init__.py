"""Stage 1, list: where the objects are and how their bytes are fetched.

In: a source URL (a folder, a manifest, s3:// gs:// az:// prefixes, zip and tar
containers, DICOM JSON exports, a DICOMweb server) and its storage options.
Out: a stream of `listing.ObjectRef` grouped into shards with content-derived ids
(listing.py), every listed object counted once (repeats.py), fsspec filesystems
whose reads retry what is transient (storage.py), container members (containers.py),
DICOMweb studies (dicomweb.py), and first reads fetched ahead of parsing
(read_ahead.py). Nothing here parses DICOM.
"""
