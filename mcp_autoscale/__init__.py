"""mcp-autoscale: an MCP server that makes an LLM agent the slow, reasoning outer loop for autoscaling
LLM inference on Kubernetes."""

__version__ = "0.1.0"
