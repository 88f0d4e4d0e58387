"""The pass #APTIC domain, pure Python with no I/O: pass numbers, the référentiel of services, places,
validity rules with their reason codes and French messages, and money. The terminal and the central both
import it; it imports neither."""
