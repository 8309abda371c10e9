
Û
#
	lifecycledefaultuid-lifecyclehz…
webfregistry.example:5000/team/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefR
httpê?ÄÎ"	127.0.0.1(j.


true" 
HTTPhttp"/quit*
X-Stop1ö/tmp/msg†