"""Notifications (issue 18): alarms and program prompts told by e-mail, Telegram, Pushover, ntfy, webhooks…
through Apprise; see service.py for how it stays off the alarm path."""

from bevforge.notify.service import Delivery, DeliveryState, NotificationService, not_configured

__all__ = ["Delivery", "DeliveryState", "NotificationService", "not_configured"]
