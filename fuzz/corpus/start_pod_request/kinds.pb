
„

kindsdefault	uid-kinds`r
initbusyboxr'
proxyenvoy:v1jr

0xz

appapp‚
debugbusybox€ˆªapp