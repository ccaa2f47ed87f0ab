"""Vision code two or more stages share: MediaPipe body landmarks and image-size helpers.

Stages never import each other; what they have in common lives here (see /work/shared/ARCHITECTURE.md).
"""
