"""Autoscaling simulator: the HPA controller's algorithm run against the shipped manifests.

``hpa`` ports the Kubernetes HorizontalPodAutoscaler controller, ``schedule`` reads the
scheduled-scaling CronJobs, ``load`` holds the load profiles, ``simulate`` runs them together,
``plot`` draws the result. Run ``python -m bench.autoscaling --help``.
"""
