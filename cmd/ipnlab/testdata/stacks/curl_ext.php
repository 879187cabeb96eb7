<?php
// PHP's curl extension, as PayPal's PHP sample posts back.
$ch = curl_init($argv[1]);
curl_setopt($ch, CURLOPT_POST, true);
curl_setopt($ch, CURLOPT_POSTFIELDS, stream_get_contents(STDIN));
curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
curl_setopt($ch, CURLOPT_SSL_VERIFYPEER, true);
curl_setopt($ch, CURLOPT_HTTPHEADER, ['Connection: Close', 'User-Agent: stack-client/1.0']);
$res = curl_exec($ch);
if ($res === false) {
    fwrite(STDERR, curl_error($ch) . "\n");
    exit(1);
}
echo $res;
