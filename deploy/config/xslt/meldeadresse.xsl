<?xml version="1.0" encoding="UTF-8"?>
<!-- The escape hatch: what the simple mapping language cannot say, an XSLT 1.0 can.
     Applied to the message; its result element is embedded in XML output. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
                xmlns:bp="https://xoev-gateway.de/schemata/bewohnerparken/1_0"
                xmlns:xgb="https://xoev-gateway.de/schemata/basis/1_0"
                exclude-result-prefixes="bp xgb">
  <xsl:output method="xml" omit-xml-declaration="yes"/>
  <xsl:template match="/">
    <xsl:variable name="a" select="/*/bp:antragsteller/bp:meldeadresse"/>
    <Adresse>
      <Zeile1><xsl:value-of select="concat($a/xgb:strasse, ' ', $a/xgb:hausnummer)"/></Zeile1>
      <xsl:if test="$a/xgb:adresszusatz">
        <Zusatz><xsl:value-of select="$a/xgb:adresszusatz"/></Zusatz>
      </xsl:if>
      <Ort><xsl:value-of select="concat($a/xgb:postleitzahl, ' ', $a/xgb:ort)"/></Ort>
    </Adresse>
  </xsl:template>
</xsl:stylesheet>
