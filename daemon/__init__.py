"""s2gesture edge runtime: wire protocol, preprocessing, chunking, backends, decisions and the service.

This package must never import torch, snntorch, brevitas, tonic, nor ``s2gesture.models`` or
``s2gesture.clients`` (see docs/architecture in the README): it is what runs next to the board.
"""

__version__ = "0.1.0"
