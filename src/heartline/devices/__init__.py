"""Device side: the edge's store-and-forward queue, the MQTT publisher and simulated wearables."""
