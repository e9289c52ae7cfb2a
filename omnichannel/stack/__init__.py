"""Finding or starting the real Kafka, Schema Registry and Redis the backbone runs on."""

from omnichannel.stack.model import Progress, ServiceInfo, StackInfo, quiet
from omnichannel.stack.resolve import Stack, connect, resolve_stack, service_answers, stack_file, stop_service

__all__ = [
    "Progress",
    "ServiceInfo",
    "Stack",
    "StackInfo",
    "connect",
    "quiet",
    "resolve_stack",
    "service_answers",
    "stack_file",
    "stop_service",
]
