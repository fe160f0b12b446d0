"""What both a client and the node need, owned by neither: hex forms, key files, the RPC transport.

``node/`` and ``client_sdk/`` import from here and never from each other, so the SDK can be
installed and read without the daemon, and the daemon never depends on client code.
"""
