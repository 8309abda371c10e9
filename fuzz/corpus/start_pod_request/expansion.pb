
™
#
	expansiondefaultuid-expansionzr
appbusybox"	/bin/$(A)"-c*echo $(C) $$(C) $(:
Aa:
B	$(A)-$(A):
C$(B)$$(B)$(NOPE)$:
A
again-$(A)