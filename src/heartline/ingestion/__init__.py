"""Ingestion: frame payloads, per-device sequencing, MQTT topics and the Mosquitto supervisor."""
