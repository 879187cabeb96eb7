# Perl's LWP, as PayPal's Perl sample posts back.
use strict;
use warnings;
use LWP::UserAgent;

local $/;
my $body = <STDIN>;
my $ua = LWP::UserAgent->new(agent => 'stack-client/1.0', timeout => 10);
my $res = $ua->post($ARGV[0], 'Content-Type' => 'application/x-www-form-urlencoded', Content => $body);
die $res->status_line . "\n" unless $res->is_success;
print $res->decoded_content;
