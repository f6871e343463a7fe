"""Reference profiles: building, saving, loading."""

from monitor.reference.audit import ReferenceAudit
from monitor.reference.build import MAX_CATEGORIES, build_profile, build_profile_from_file, read_records, read_rows
from monitor.reference.profile import PROFILE_SCHEMA_VERSION, FeatureProfile, ReferenceProfile, load_references

__all__ = [
    "MAX_CATEGORIES",
    "PROFILE_SCHEMA_VERSION",
    "FeatureProfile",
    "ReferenceAudit",
    "ReferenceProfile",
    "build_profile",
    "build_profile_from_file",
    "load_references",
    "read_records",
    "read_rows",
]
