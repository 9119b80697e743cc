"""Serving a policy to a robot: an HTTP server and its client (numpy arrays as .npz bodies)."""
