"""The routing service: verify, authorize, deliver to every recipient's inbox, record each step."""
