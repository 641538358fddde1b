"""`maestro bundle` and `maestro update-cache`: workflows as native programs (PyInstaller)."""

from __future__ import annotations

from libmaestro.bundle.archive import Compression, extract_archive
from libmaestro.bundle.cache import BuildCache, BundleError, clear_caches, list_caches
from libmaestro.bundle.freeze import BundleResult, bundle_project, check_arch, host_arch

__all__ = [
    "BuildCache",
    "BundleError",
    "BundleResult",
    "Compression",
    "bundle_project",
    "check_arch",
    "clear_caches",
    "extract_archive",
    "host_arch",
    "list_caches",
]
