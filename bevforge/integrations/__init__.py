"""Issue 18's bridges to the brewer's other tools (docs/integrations.md).

`hydrometers` reads what an iSpindel or a Tilt bridge posts (pure parsing and unit conversion; the
`ispindel` / `tilt` drivers in drivers/hydrometer.py feed it to the plant); `brewfather` pushes
fermenter temperature and gravity to a Brewfather custom stream. A layer just below the runtime.
"""
