"""Device side: the role agent runner, node_exporter textfile, health.json and HTTP probes.

Runners write results into `status` stores; `exporter.metrics.device` renders them. This
package imports nothing from `exporter.metrics` (rendering is injected where files need it).
"""
