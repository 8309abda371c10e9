
'

dotsdefault.. ÿÿÿÿz

appapp