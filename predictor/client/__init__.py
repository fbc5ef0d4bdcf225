"""Batch OCR client: folders of images and PDFs to Markdown and JSON (``python -m predictor.client``).

Roles: ``cli`` (arguments, exit codes), ``discovery`` (inputs and output paths), ``pages`` (reading images,
rendering PDF pages), ``protocol`` (OpenAI / KServe v1 bodies and answers), ``transport`` (HTTP with retries),
``outputs`` (atomic writes, resume), ``progress`` (bar or lines, summary), ``runner`` (the concurrent run),
``inprocess`` (the server's app without a server, for ``--model_dir``).
"""
