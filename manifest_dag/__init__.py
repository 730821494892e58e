"""manifest-dag."""
