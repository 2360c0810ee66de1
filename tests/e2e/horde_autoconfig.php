<?php
// Horde_Mail_Autoconfig (Debian php-horde-mail-autoconfig), a mail client library's
// account setup, looking up the settings of an address as it does for Horde's webmail:
// by Thunderbird autoconfig (its HTTP client's requests sent to the test server's http
// listener with the Host header of the URL, as if autoconfig.DOMAIN resolved to it) and
// by RFC 6186 SRV records (its resolver pointed at the loopback DNS server). Prints the
// servers each driver found, as JSON.
//
//   php horde_autoconfig.php ADDRESS HTTP_PORT DNS_PORT

spl_autoload_register(function ($class) {
    // PEAR naming, as Debian installs Horde: Horde_Mail_Autoconfig -> Horde/Mail/Autoconfig.php
    $path = str_replace('_', '/', $class) . '.php';
    if (stream_resolve_include_path($path)) {
        require_once $path;
    }
});

// What /etc/hosts would do for the test's names: every URL to 127.0.0.1:PORT, its own
// host name kept in the Host header.
class LoopbackHttpClient extends Horde_Http_Client
{
    public $port;

    public function get($uri = null, $headers = array())
    {
        $url = parse_url($uri);
        $headers['Host'] = $url['host'];
        $path = ($url['path'] ?? '/') . (isset($url['query']) ? '?' . $url['query'] : '');
        return parent::get('http://127.0.0.1:' . $this->port . $path, $headers);
    }
}

[, $email, $httpPort, $dnsPort] = $argv;
$address = new Horde_Mail_Rfc822_Address($email);

$thunderbird = new Horde_Mail_Autoconfig_Driver_Thunderbird();
$thunderbird->http = new LoopbackHttpClient(['request.timeout' => 10]);
$thunderbird->http->port = (int) $httpPort;
$thunderbird->ispdb = 'http://ispdb.invalid/';   // its last resort: never Mozilla's

$srv = new Horde_Mail_Autoconfig_Driver_Srv();
$srv->dns = new Net_DNS2_Resolver([
    'nameservers' => ['127.0.0.1'],
    'dns_port' => (int) $dnsPort,
    'timeout' => 5,
]);

function found($servers)
{
    if (!$servers) {
        return [];
    }
    return array_map(fn($s) => [
        'kind' => substr(strrchr(get_class($s), '_'), 1),
        'host' => $s->host,
        'port' => $s->port,
        'tls' => $s->tls,
        'username' => $s->username,
    ], $servers);
}

$opts = ['email' => $address];
echo json_encode([
    'thunderbird' => [
        'mail' => found($thunderbird->mailSearch([$address->host], $opts)),
        'msa' => found($thunderbird->msaSearch([$address->host], $opts)),
    ],
    'srv' => [
        'mail' => found($srv->mailSearch([$address->host], $opts)),
        'msa' => found($srv->msaSearch([$address->host], $opts)),
    ],
]), "\n";
